"""The report of a run (stage ``report``, ``src/advrecover/stages/report.py``): the figures
(:mod:`.figures`), the image grid of recoveries (:mod:`.grid`), the provenance of every input
(:mod:`.provenance`) and the self-contained HTML page that shows them with the tables (:mod:`.page`)."""
