"""The bus carries what is live: log lines, status changes, terminate signals."""
