"""`bvvtok experiment`: substrates x frozen/unfrozen x seeds, trained, evaluated and reported with intervals."""
