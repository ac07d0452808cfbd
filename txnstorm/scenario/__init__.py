"""The story every test tells (boot, storm, fire, verify) and the Avocado base classes."""
