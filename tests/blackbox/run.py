#!/usr/bin/python3
"""Runs the Emporium black-box suites.

    EMPORIUM_BIN=build/emporium /usr/bin/python3 tests/blackbox/run.py               # all
    EMPORIUM_BIN=build/emporium /usr/bin/python3 tests/blackbox/run.py test_orders   # some
    ... run.py test_orders.OrderLifecycleTest.test_ship_confirmed                     # one test

Exits 0 when every test passed, 1 on any failure or error, 2 on a usage problem.
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class Result(unittest.TextTestResult):
    """Prints the tail of every live node's log when a test fails, for diagnosis."""

    def _dump(self):
        tails = harness.live_log_tails()
        if tails:
            self.stream.writeln("\n" + tails)
            self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump()

    def addError(self, test, err):
        super().addError(test, err)
        self._dump()


def main(argv):
    try:
        harness.emporium_bin()
    except RuntimeError as e:
        sys.stderr.write("run.py: %s\n" % e)
        return 2
    loader = unittest.TestLoader()
    if argv:
        names = []
        for a in argv:
            a = os.path.basename(a)
            if a.endswith(".py"):
                a = a[:-3]
            names.append(a)
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    if suite.countTestCases() == 0:
        sys.stderr.write("run.py: no tests found\n")
        return 2
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result)
    result = runner.run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
