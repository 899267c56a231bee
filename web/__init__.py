"""The browser pages: the dispatcher board (/board) and customer tracking (/track), plain ES modules, no build."""
