"""The test suite, laid out like the package: one folder per subpackage (tests/data/ for
selfcross/data/, ...), shared builders in tests/helpers/, shared fixtures in conftest.py.

A package, so that every test module is imported by its full name (tests.data.test_reader)
and two rooms may hold files of the same name."""
