"""The lane vocabulary: instruction grammar, MUTCD sizes, canonical captions."""
