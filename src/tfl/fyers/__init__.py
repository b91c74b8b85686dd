"""The FYERS adapters: login and token, REST, the market-data and order sockets, history."""
