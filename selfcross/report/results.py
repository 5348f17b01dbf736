"""Moved to :mod:`selfcross.analysis.results` (finding finished runs is the analysis floor's
job); this name is kept for code written before the move and warns once on import."""

import warnings

from selfcross.analysis.pooling import (  # noqa: F401
    CELL_KEYS,
    check_runs,
    check_same_data,
    config_difference,
    config_groups,
    describe_difference,
    describe_source,
)
from selfcross.analysis.results import (  # noqa: F401
    METRICS,
    DataSource,
    RunResult,
    Skipped,
    find_result_files,
    load_results,
    parse_result,
    warn_skipped,
)

warnings.warn(
    "selfcross.report.results moved to selfcross.analysis.results; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
