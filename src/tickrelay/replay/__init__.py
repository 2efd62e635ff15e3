"""The replay exchange: recorded sessions served over each venue's real protocol."""
