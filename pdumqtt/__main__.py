from pdumqtt.cli import main

main()
