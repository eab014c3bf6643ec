"""Text messages: the shop's provider settings and the providers that send them."""
