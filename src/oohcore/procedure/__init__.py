"""The signed-off procedure derived from the executable rulesets (issue 11): lint, scenario
tests, diff and change impact, flowcharts, the procedures manual and materials tracking."""
