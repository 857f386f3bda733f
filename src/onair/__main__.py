from onair.cli import app

app()
