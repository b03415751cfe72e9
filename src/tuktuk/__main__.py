from tuktuk.cli import main

main()
