"""Global ids: "<Type>:<uuid>" in base64url without padding, made one at a time or for a whole
batch at once, and read back."""

from __future__ import annotations

import base64
import uuid

from hypothesis import given
from hypothesis import strategies as st

from modelql.graph.types.node import from_global_id, to_global_id, to_global_ids

type_names = st.text(alphabet=st.characters(codec="ascii", exclude_characters=":"), max_size=14)


@given(type_name=type_names, local_ids=st.lists(st.uuids(), max_size=40))
def test_a_batch_gets_the_ids_it_would_get_one_at_a_time(
    type_name: str, local_ids: list[uuid.UUID]
):
    assert to_global_ids(type_name, local_ids) == [
        to_global_id(type_name, local) for local in local_ids
    ]


def test_a_global_id_is_the_type_and_uuid_in_unpadded_base64url():
    local = uuid.UUID("01a2096e-204f-7327-ab97-73e28d1e9d3a")
    [global_id] = to_global_ids("Prediction", [local])

    assert base64.urlsafe_b64decode(global_id + "=") == f"Prediction:{local}".encode()
    assert from_global_id(global_id) == ("Prediction", local)
