"""The comparison suite's machinery: load server, client runner, peer venvs, report."""
