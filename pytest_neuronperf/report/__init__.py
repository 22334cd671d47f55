"""Reports: raw results to report dicts, and the table / CSV / JSON writers."""
