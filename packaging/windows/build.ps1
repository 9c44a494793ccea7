# Windows: build PaliDesk's bundle with one llama.cpp build and its Inno Setup installer.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 -Variant cpu
#
# Like packaging/build_variant.sh: a venv of its own (build\venv-<variant>), a
# llama-cpp-python wheel built with the variant's CMAKE_ARGS into a folder of its own
# (pip's cache ignores CMAKE_ARGS), the bundle, its self-test (palidesk-cli.exe, offscreen),
# then dist\PaliDesk-<version>-windows-x64-<variant>-setup.exe.
# Needs: Python 3.11 (the py launcher), Visual Studio 2022 Build Tools (C++), Inno Setup 6
# (ISCC.exe on PATH or in its default folder); cuda: the CUDA toolkit; vulkan: the Vulkan SDK.
param(
    [ValidateSet("cpu", "cuda", "vulkan")] [string] $Variant = "cpu",
    [string] $Python = "py -3.11"
)
$ErrorActionPreference = "Stop"
Set-Location (Resolve-Path (Join-Path $PSScriptRoot "..\.."))
$LlamaVersion = "0.3.36"
$PyInstallerVersion = "6.22.3"

function Invoke-Checked([string] $Exe, [string[]] $Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed ($LASTEXITCODE)" }
}

# Every x86 CPU variant of llama.cpp, loaded at run time (the best one the user's CPU runs;
# see packaging/build_variant.sh and app/engine/cpu_backends.py). MSVC builds fewer
# variants (no ivybridge/piledriver/cooperlake/zen4/sapphirerapids). The DLLs go next to
# llama.dll (CMAKE_INSTALL_BINDIR). Not run on Windows yet.
$CpuArgs = "-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib"
$CMakeArgs = switch ($Variant) {
    "cpu" { $CpuArgs }
    "cuda" { "$CpuArgs -DGGML_CUDA=on" }
    "vulkan" { "$CpuArgs -DGGML_VULKAN=on" }
}
if ($env:PALIDESK_EXTRA_CMAKE_ARGS) { $CMakeArgs = "$CMakeArgs $env:PALIDESK_EXTRA_CMAKE_ARGS" }

$Venv = "build\venv-$Variant"
$Py = "$Venv\Scripts\python.exe"
if (-not (Test-Path $Py)) {
    $launcher, $launcherArgs = $Python -split " "
    Invoke-Checked $launcher ($launcherArgs + @("-m", "venv", $Venv))
}
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--upgrade", "pip", "wheel")

$sha = [System.Security.Cryptography.SHA256]::Create()
$Digest = -join ($sha.ComputeHash([Text.Encoding]::UTF8.GetBytes($CMakeArgs))[0..3] |
    ForEach-Object { $_.ToString("x2") })
$Wheels = Join-Path $env:LOCALAPPDATA "palidesk\wheels\llama-cpp-python-$LlamaVersion-$Variant-$Digest"
if (-not (Get-ChildItem "$Wheels\llama_cpp_python-*.whl" -ErrorAction SilentlyContinue)) {
    Write-Host "building llama-cpp-python $LlamaVersion ($Variant): CMAKE_ARGS=$CMakeArgs"
    $env:CMAKE_ARGS = $CMakeArgs
    Invoke-Checked $Py @("-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", $Wheels,
        "llama-cpp-python==$LlamaVersion")
    Remove-Item Env:CMAKE_ARGS
}
$Wheel = (Get-ChildItem "$Wheels\llama_cpp_python-*.whl" | Select-Object -Last 1).FullName
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--force-reinstall", $Wheel)
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", ".", "pyinstaller==$PyInstallerVersion")

Invoke-Checked $Py @("packaging\build_bundle.py", "--clean", "--variant", $Variant,
    "--cmake-args=$CMakeArgs")
$env:QT_QPA_PLATFORM = "offscreen"
Invoke-Checked "dist\palidesk\palidesk-cli.exe" @("--self-test")
Remove-Item Env:QT_QPA_PLATFORM

$Version = (& $Py -c "import json; print(json.load(open(r'dist\palidesk\_internal\palidesk-build.json'))['palidesk'])").Trim()
$Iscc = (Get-Command ISCC.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe" }
Invoke-Checked $Iscc @("/Qp", "/DAppVersion=$Version", "/DVariant=$Variant",
    "/DSourceDir=$(Resolve-Path dist\palidesk)", "/DIconFile=$(Resolve-Path build\icons\palidesk.ico)",
    "/O$(Resolve-Path dist)", "packaging\windows\palidesk.iss")
Write-Host "wrote dist\PaliDesk-$Version-windows-x64-$Variant-setup.exe"
