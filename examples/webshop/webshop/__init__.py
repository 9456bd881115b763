"""A tiny shop: a web handler, services, and the tasks that connect them."""
