# Job-level vars override the outer level's.
PUNCTUATION="!"
