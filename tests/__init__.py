"""The test suites. tests/, unit/, integration/ and xsclab/ are packages so that
one pytest run from the repository root can hold test modules of the same name
(unit/test_prepare.py and integration/test_prepare.py). packaging/ is not: its
tests import its helper module pkgbuild by its plain name."""
