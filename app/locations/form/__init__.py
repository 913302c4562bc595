"""How a kind asks for its locations: the dialog's fields, their rules, "Test connection"."""
