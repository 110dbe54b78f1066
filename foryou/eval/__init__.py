"""Offline evaluation: metrics, protocols (temporal, minirecsys), baselines, the oracle, reports.

`foryou.eval.evaluator.evaluate` runs it all; `foryou.eval.report.write_report` renders the result."""
