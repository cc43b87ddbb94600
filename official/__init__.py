"""What each platform declares about itself: its official status page or feed, read on a schedule
and kept as rows, and each Vigie incident's acknowledgement by the platform (measured vs declared).

Sits between detection (it reads incidents) and statuspage (which shows it): docs/official-status.md.
"""
