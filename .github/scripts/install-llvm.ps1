<#
.SYNOPSIS
  CI only: makes sure LLVM (libclang, which bindgen in wdk-sys' build needs) is installed,
  with winget at -Version if the runner image has none, and points LIBCLANG_PATH at it.
#>
param([Parameter(Mandatory)] [string] $Version)
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$bin = 'C:\Program Files\LLVM\bin'
if (-not (Test-Path -LiteralPath (Join-Path $bin 'libclang.dll'))) {
    winget install --id LLVM.LLVM --exact --version $Version --silent --disable-interactivity `
        --accept-package-agreements --accept-source-agreements
    if ($LASTEXITCODE -ne 0) { throw "winget install LLVM.LLVM $Version failed with exit code $LASTEXITCODE" }
}
& (Join-Path $bin 'clang.exe') --version
if ($LASTEXITCODE -ne 0) { throw "clang --version failed with exit code $LASTEXITCODE" }
Add-Content -LiteralPath $env:GITHUB_ENV -Value "LIBCLANG_PATH=$bin"
Add-Content -LiteralPath $env:GITHUB_PATH -Value $bin
