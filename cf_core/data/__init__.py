"""Read and validate ratings tables and item metadata.

`read_ratings` turns whatever a user hands us (CSV, TSV, `::`, `|` or `;` separated text, Parquet, Excel, a wide
user x item matrix, with or without a header, UTF-8 or Latin-1) into a `Ratings`: a long table of
user, item, rating[, timestamp]. Bad input is a first-class case: every problem a user can cause raises a
`DataError` whose message names the file, the row (as an editor shows it) and the column. `read_items` reads
movie/item metadata; `summarize`, `ratings_per_user`, `ratings_per_item` and `crosstab` describe a table.

The delimited path is built for large files (tens of millions of rows): pyarrow parses a block of rows at a
time straight into compact numpy columns, so the file is never held as text, and validation is vectorised; no
Python loop ever runs over rows. Input with a problem is read again whole as text to report it by row and column.

One module per job, in the order a read goes through them:
    types      Ratings, DataError, the names columns go by, the parsed `_Table`
    encoding   how text decodes (UTF-8, stray Latin-1 bytes, or Latin-1), for ratings and items alike
    sniff      binary or text, the separator, whether line 1 is a header
    sources    one `Source` per format (text in `text`, Excel, Parquet, JSON, a DataFrame) and the dispatch
    roles      which column is the user, item, rating and timestamp; whether it is a user x item matrix
    blocks     the block-wise fast path for clean delimited text
    validate   whole-column conversion of ids, ratings and timestamps, naming the first bad cell
    wide       a user x item matrix to a long table
    finish     missing-value marker, duplicate pairs, enough data, odd ratings: the `Ratings`
    reading    read_ratings and preview
    items      read_items
    describe   summarize, ratings_per_user, ratings_per_item, crosstab
"""

from .describe import crosstab, ratings_per_item, ratings_per_user, summarize
from .items import ML100K_GENRES, read_items
from .reading import preview, read_ratings
from .types import DUPLICATE_RULE, KNOWN_NAMES, MAX_RATING, DataError, Ratings

__all__ = [
    "DUPLICATE_RULE", "KNOWN_NAMES", "MAX_RATING", "ML100K_GENRES", "DataError", "Ratings", "crosstab", "preview",
    "ratings_per_item", "ratings_per_user", "read_items", "read_ratings", "summarize",
]
