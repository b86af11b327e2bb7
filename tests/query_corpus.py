"""Queries every index backend must answer exactly like the reference evaluator.

Covers every operator, numeric and text comparison, missing fields, NOT over missing
fields, globs, IN lists mixing numbers and text, and every field namespace.
"""

CORPUS = (
    "",
    "suffix=T1w",
    "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
    "task=rest AND meta.RepetitionTime=2.0",
    "sub IN (001, 002)",
    "sub IN (1, '002', x)",
    "NOT exists(meta.SliceTiming)",
    "exists(meta.SliceTiming) AND NOT task=rest",
    "run=1",
    'run="01"',
    "run!=1",
    "NOT run=1",
    "ses>1",
    "ses<=1 OR task=nback",
    "(suffix=bold OR suffix=dwi) AND participant.sex=F",
    "participant.age>70",
    "participant.age<30 OR NOT exists(participant.age)",
    "participant.group != patient",
    "session.visit=followup AND session.age>=65",
    "meta.Manufacturer=GE",
    "meta.Manufacturer>=H",
    "meta.Manufacturer IN (Siemens, Philips)",
    "meta.EchoTime=0.035",
    "meta.EchoTime>0.03",
    "extension=.nii.gz AND image.nt>=5",
    "image.vx=3 AND image.orientation=RAS",
    "image.tr=2.5",
    "file.size>200",
    "dataset=site-a",
    "dataset ~ '*-c'",
    "path ~ 'sub-00?/ses-2/func/*'",
    "path ~ '*_dir-AP_*'",
    # dataset and path are also columns (the access scope and the page cursor use them)
    "dataset IN (site-a, site-c) AND suffix=T1w",
    "dataset != site-b AND NOT dataset=site-c",
    "dataset > site-a OR (dataset=site-a AND path > 'sub-003/ses-1')",
    "path <= 'sub-002' AND dataset IN (01, site-b)",
    "datatype=fmap AND dir=PA",
    "suffix ~ 'magnitude*'",
    "exists(error)",
    "NOT (suffix=bold AND NOT task=rest)",
    "NOT NOT datatype=anat",
    "meta.SliceTiming ~ '[0,*'",
    "acq=nothing",
    # inherited fields, counted from the layers that pass (see sqlite_query's layered form)
    'meta.RepetitionTime > "10"',  # quoted: text order, where 2.0 > 10
    "dataset=site-a AND NOT meta.EchoTime>0.03",
    "dataset IN (site-b, site-c) AND participant.sex=F",
    "NOT session.visit=followup",
    # extension is a column of the SQLite index
    "task=rest AND extension=.nii.gz",
    "extension != .json AND NOT extension IN (.tsv, .nii.gz)",
    "extension ~ '*.gz' OR extension > .o",
)
