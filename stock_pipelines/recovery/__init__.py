"""Recovery: which symbol-minutes are missing, the fewest broker calls that fetch them, and the fetching."""
