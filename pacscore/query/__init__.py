"""Query semantics: identifiers to conditions, the reference matcher, plans and execution."""
