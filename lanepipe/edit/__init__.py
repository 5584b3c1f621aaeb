"""Edit stage: lane instructions, painters (procedural default), QA loop."""
