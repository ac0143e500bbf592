"""The service layer: the only way interfaces create, change or sign anything."""
