"""The offline-first sync protocol of crew devices and the live updates pushed to online clients."""
