"""What a conduct leaves for people: the results CSV and workbook, the HTML report,
and a runs folder read back from disk.
"""
