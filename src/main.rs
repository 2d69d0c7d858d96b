fn main() -> std::process::ExitCode {
    hutch::cli::main()
}
