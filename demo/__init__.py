"""The demo region's crews, mobile generators and tickets, generated from a seed."""
