"""One module per tab of the app; each exposes one function that builds the tab and wires its events."""
