"""Trading side: execution clients, OMS, risk, positions, backtesting."""
