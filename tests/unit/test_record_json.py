"""A record encoded by orjson as the dataclass it is (what the API's pages send) is the
same JSON as its document (what ``--json`` and the rest of the API send)."""

from __future__ import annotations

import orjson

from rollerblade.records import RecordDoc, ScanRecord


def test_a_record_encodes_as_its_document() -> None:
    record = ScanRecord(
        dataset="ds",
        path="sub-01/ses-1/func/sub-01_ses-1_task-rest_bold.nii.gz",
        entities={"sub": "01", "ses": "1", "task": "rest", "datatype": "func", "suffix": "bold"},
        meta={"RepetitionTime": 2.0, "SliceTiming": [0.0, 0.5], "Manufacturer": "Siemens", "Note": None},
        participant={"participant_id": "sub-01", "age": 64, "sex": "F"},
        session={"visit": "baseline"},
        image={"shape": [4, 4, 4, 10], "tr": 2.0},
        file={"key": "datasets/ds/x", "size": 79, "generation": 1796683141777427748},
        error=None,
        warning="entity 'ses' comes after 'task'",
    )
    assert orjson.dumps(record) == orjson.dumps(record.to_doc())
    assert list(orjson.loads(orjson.dumps(record))) == list(RecordDoc.__annotations__)
