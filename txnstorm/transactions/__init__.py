"""QMP transaction actions and the plans that say what one round captures."""
