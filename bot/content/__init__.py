"""What residents are told, as validated data: the schema of intents/ and content/, and its loader."""
