# Sourced for every bash job under scripts/examples/ (outer levels first).
EXAMPLES_GREETING="Hi"
