"""Latency/throughput measurement and the benchmark report (json, markdown table, plot)."""
