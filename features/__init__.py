"""Facts from the earlier SAE analysis: which features and layers separate correct code."""
