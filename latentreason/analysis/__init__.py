"""Look inside trained models: `latentreason analyze` (trace.py records segments and updates,
measures.py turns traces into tables, figures.py draws them, report.py writes the HTML report)."""
