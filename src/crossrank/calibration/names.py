"""Names of crossrank's calibration files and methods, importable without numpy (CLI --help)."""

CALIBRATION_FILE = "crossrank_calibration.json"
METHODS = ("platt", "isotonic", "sigmoid")  # "sigmoid": the plain sigmoid of the logit
