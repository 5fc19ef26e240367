"""snapwatch's tests, grouped as the package is: one folder per subpackage, shared helpers in helpers/."""
