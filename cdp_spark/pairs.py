"""Counting pairs of items across rows of item lists, without exploding the pairs into rows.

``flat_lists(lists)`` / ``arrow_flat_lists(lists)``: (row index per item, items) of a pandas / Arrow column
    of lists, for sparse matrices
``pair_counts(rows, left, right, names)``
    in:  rows with two array<string> columns ``left`` and ``right`` (distinct items per list; may be the
         same column), e.g. a person's products, an order's products and the next order's products
    out: (names[0], names[1], rows): per item pair (a, b), the number of rows whose ``left`` list holds a
         and whose ``right`` list holds b. Pairs of an item with itself are included (a row counts for
         (a, a) when both lists hold a); callers drop or use them.

Per Arrow batch (``mapInArrow``: the lists' parent indices and values, no Python loop per row), a function
builds the sparse 0/1 matrices rows x items of both columns and multiplies the transpose of one by the
other (scipy); Spark sums the batches' counts. A self-join would create one row per pair and row (tens of
millions); this creates at most one per pair and batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def flat_lists(lists: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row index per item, items) of a column of lists (None: empty)."""
    lengths = lists.map(lambda items: 0 if items is None else len(items)).to_numpy()
    if not lengths.sum():
        return np.array([], dtype=np.int64), np.array([], dtype=object)
    present = [items for items in lists.to_numpy() if items is not None and len(items)]
    return np.repeat(np.arange(len(lists)), lengths), np.concatenate(present)


def arrow_flat_lists(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(row index per item, items) of an Arrow list column: null lists and null items hold nothing."""
    rows, items = pc.list_parent_indices(lists), pc.list_flatten(lists)
    valid = pc.is_valid(items)
    if valid.false_count:
        rows, items = rows.filter(valid), items.filter(valid)
    return rows.to_numpy(zero_copy_only=False), items


def pair_counts(rows: DataFrame, left: str, right: str, names: tuple[str, str]) -> DataFrame:
    """(names[0], names[1], rows) from the list columns ``left`` and ``right`` (see the module text)."""
    from scipy.sparse import csr_matrix

    left_name, right_name = names

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            left_rows, left_items = arrow_flat_lists(batch.column("l"))
            right_rows, right_items = arrow_flat_lists(batch.column("r"))
            if not len(left_items) or not len(right_items):
                continue
            encoded = pa.concat_arrays([left_items, right_items]).dictionary_encode()
            codes, items = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary
            shape = (batch.num_rows, len(items))
            ones = np.ones(len(codes), dtype=np.int64)
            left_matrix = csr_matrix((ones[:len(left_rows)], (left_rows, codes[:len(left_rows)])), shape=shape)
            right_matrix = csr_matrix((ones[len(left_rows):], (right_rows, codes[len(left_rows):])), shape=shape)
            together = (left_matrix.T @ right_matrix).tocoo()
            yield pa.RecordBatch.from_arrays(
                [items.take(together.row), items.take(together.col), pa.array(together.data, pa.int64())],
                names=[left_name, right_name, "rows"])

    schema = f"`{left_name}` string, `{right_name}` string, rows long"
    return (rows.select(F.col(left).alias("l"), F.col(right).alias("r")).mapInArrow(per_batch, schema)
            .groupBy(left_name, right_name).agg(F.sum("rows").alias("rows")))
