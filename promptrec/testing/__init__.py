"""Test and benchmark harness (servers as child processes, load, soak and crash tests, hostile input).

The product's runtime code never imports this package; tests and eval/benchmarks do."""
