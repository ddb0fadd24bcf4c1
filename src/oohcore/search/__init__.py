"""Finding earlier calls and addresses (spec 5.2.7, 7.4.2, 7.11).

``search.addresses`` (postcodes, address normalisation and similarity), ``search.gazetteer``
(each organisation's address records: UPRN, ward, owner, in-area), ``search.names`` (callers'
names, their keys and similarity), ``search.index`` (the ``call_search`` table a call's keys
are written to) and ``search.query`` (the earlier-call search and the duplicate check).
"""
