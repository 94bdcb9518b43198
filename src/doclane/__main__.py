from doclane.cli import main

main()
