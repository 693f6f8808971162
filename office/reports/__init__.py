"""Reports: the daily report (日报告, and 零报告 when nothing happened) and its renderings."""
