"""The documentation: README and docs/ pages run as written; the site builds strictly."""
