from f0mesh.cli import app

app(prog_name="f0mesh")
