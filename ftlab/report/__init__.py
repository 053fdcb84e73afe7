"""`ftlab report`: mean ± std over seeds, paired tests against a baseline, learning curves and
confusion matrices for the runs under one or more sweep directories."""
