"""What every layer may use: errors, ids, settings, logs, metrics, masking, time."""
