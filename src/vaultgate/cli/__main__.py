from vaultgate.cli.main import main

main()
